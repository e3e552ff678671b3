"""Phone timelines for a trained model: ``.PHN`` files -> per-step phone ids."""

from .phones import PhoneTrack, folding_table, labelled_segments
from ..errors import SpeechgenError
from .labels import PhoneInventory, fold_segments, read_phn


def model_inventory(model):
    """The phone inventory and folding a phone-conditioned model was trained with."""
    folding = folding_table((model.train_config or {}).get("phone_folding", "none"))
    return PhoneInventory.from_list(model.phones), folding


def track_from_file(model, phn_path, n_samples=None):
    """A :class:`PhoneTrack` for ``phn_path`` in the model's phone ids.

    Args:
        n_samples: the audio length; None for a timeline on its own (its length is
            the last segment's end).
    Raises:
        SpeechgenError: bad labels, or a phone the model does not know.
    """
    if not model.phones:
        raise SpeechgenError(f"{phn_path}: the model is not phone-conditioned; drop --phones")
    segments = read_phn(phn_path, n_samples)
    if not segments:
        raise SpeechgenError(f"{phn_path}: no segments")
    inventory, folding = model_inventory(model)
    if folding:
        segments = fold_segments(segments, folding)
    length = n_samples if n_samples is not None else segments[-1].end
    return PhoneTrack(segments, length, inventory, phn_path), length


def track_of_piece(model, piece):
    """A :class:`PhoneTrack` for a corpus piece (its own ``.PHN``)."""
    inventory, folding = model_inventory(model)
    return PhoneTrack(labelled_segments(piece, folding), len(piece), inventory, piece.labels)
