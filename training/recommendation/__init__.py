"""The recommendation model: softmax matrix factorisation with popularity and category fallbacks."""
