"""DP stage: dependency parse, subject-action-object triplets, sentence spans."""
