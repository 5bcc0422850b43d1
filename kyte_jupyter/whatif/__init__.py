"""What-if runs: forced task outcomes, scenarios, and the pytest files that travel with a DAG.

No jupyter_server import here; Airflow is imported only inside functions (``airflow.sdk``).
"""

from kyte_jupyter.whatif.spec import (
    KINDS,
    Forced,
    Scenario,
    WhatIf,
    WhatIfError,
    compare,
    parse_options,
    parse_scenario,
)

__all__ = [
    "KINDS", "Forced", "Scenario", "WhatIf", "WhatIfError", "compare", "parse_options",
    "parse_scenario",
]
