"""The corpus: slices, the demo corpus and evaluation sets, the tokenizer and the token stream."""
