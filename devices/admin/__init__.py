"""The devices app's admin, one module per part: the device pages (``devices``, with their ``filters``),
the history records and waivers (``history``), the imports (``imports``), and the rollout curves and sweeps
the compliance engine records (``compliance``), the observed builds (``observed``). Importing the package
registers them all."""

from devices.admin import compliance, devices, history, imports, observed, rejections  # noqa: F401 - registers the ModelAdmins
