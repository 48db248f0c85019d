"""Images: a content-addressed store (store.py) fed by safe tar extraction (tarsafe.py).

    from minirun.images.store import ImageStore, Image

Nothing is imported here so that `import minirun.images.tarsafe` stays cheap.
"""
