"""Data: audio files -> signals -> corpus splits and normaliser -> TBPTT batches."""
