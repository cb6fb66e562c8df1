# Written by mlops.dev.embedded: the project's Airflow local settings (see that module's docstring).
from mlops.airflow.local_settings import apply as _mlops_apply

_mlops_apply()
