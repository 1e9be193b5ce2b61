"""meshlab: a production-shaped Kubernetes service-mesh lab on VirtualBox.

Load and validate the stack's settings (nothing is registered if they are invalid), build the
lab graph, export what users need.
"""

import pulumi

from components.lab import build_lab
from config import SettingsError, load_settings

try:
    settings = load_settings()
except SettingsError as error:
    raise pulumi.RunError(str(error)) from None

build_lab(settings, pulumi.get_stack()).export(settings)
