"""Writing records: the guarded writer, its background thread, summary protos, images, PR-curve
matching, embeddings and the HPARAMS experiment.
"""
