"""Op definitions of the `train` dialect, one file per family (see ir/dialect.py)."""

from .elementwise import *  # noqa: F401,F403
from .grad import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .norm import *  # noqa: F401,F403
from .optim import *  # noqa: F401,F403
from .quant import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .state import *  # noqa: F401,F403
