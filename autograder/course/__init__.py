"""The instructor's side: configuration, datasets, weights and the release."""
