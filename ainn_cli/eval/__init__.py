"""`ainn evaluate`: pairs in, scores (MCD, F0, WER, speaker similarity, a judge) and reports out."""
