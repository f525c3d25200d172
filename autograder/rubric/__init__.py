"""Rubrics: one folder of pytest checks per assignment. Never released to students.

Each ``test_<item>`` is one rubric item (its points live in course_config.py). Tests
read only exported evidence and the answer key; a failure a student should
understand raises ``fail("...")`` with a message that names what was expected,
derived from the key, never a hidden check's code.
"""
