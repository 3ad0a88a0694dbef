"""NER, DP and (with the rules backend) the events stage chained in one process."""
