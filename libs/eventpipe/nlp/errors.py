"""The errors of the language-processing layer, kept under their old names; the tree is in
`eventpipe.errors`."""

from eventpipe.errors import ModelNotFoundError as ModelNotFoundError
from eventpipe.errors import NLPError as NLPError
