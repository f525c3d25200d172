"""The param_counting rubric: parameter counts and frozen layers, judged from exported answers
and ``.keras`` models (never from printed summaries)."""
