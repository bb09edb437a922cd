"""The devices app's admin, one module per part: the device pages (``devices``, with their ``filters``),
the history records and waivers (``history``), and the imports (``imports``). Importing the package
registers them all."""

from devices.admin import devices, history, imports  # noqa: F401 - registers the ModelAdmins
