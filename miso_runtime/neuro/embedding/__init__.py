"""EEG embeddings: encoders that turn EEG epochs into fixed-length vectors for similarity search."""
