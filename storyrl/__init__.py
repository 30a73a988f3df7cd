"""storyrl: rebuild 'Once Upon a Time' (arXiv 2509.15714) as a declarative workflow."""

__version__ = "0.1.0"
