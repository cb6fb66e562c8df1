"""The assets that connect the DAGs (declared once; DAG files import them from here).

Each producer attaches metadata to its events with ``Metadata(asset, extra)``; consumers read
``triggering_asset_events``. The metadata each carries is documented beside the asset.

The assets are declared by name only. A URI with a custom scheme (``mlops://...``) makes Airflow's
providers manager load every provider's asset handlers (the amazon one imports boto3) while the
DAG file parses, 1.5-3 s per parse; a name needs nothing. Where the data lives is in each event's
``uri`` metadata.
"""

from __future__ import annotations

from airflow.sdk import Asset

#: Raw daily export dropped in the landing zone. extra: ds, uri, rows.
FLIGHTS_LANDING = Asset(name="flights_landing", group="mlops")

#: The day's hourly weather export dropped in the landing zone. extra: as flights_landing.
WEATHER_LANDING = Asset(name="weather_landing", group="mlops")

#: A validated curated partition. extra: feed, ds, uri, rows, content_hash, source_sha256,
#: validation (summary).
CURATED_FLIGHTS = Asset(name="curated_flights", group="mlops")

#: A validated curated weather partition (``ingest_weather``). extra: as curated_flights.
CURATED_WEATHER = Asset(name="curated_weather", group="mlops")

#: Curated asset of each registered feed (:data:`mlops.spec.feed.FEEDS`), by feed name.
CURATED: dict[str, Asset] = {"flights": CURATED_FLIGHTS, "weather": CURATED_WEATHER}

#: Feature tables built and materialized. extra: start, end (ISO interval), partitions.
FLIGHT_FEATURES = Asset(name="flight_features", group="mlops")

#: The registered model's @champion moved. extra: version, run_id, metrics, previous_version.
CHAMPION_MODEL = Asset(name="champion_model", group="mlops")

#: A day's batch predictions. extra: ds, uri, rows, model_version.
FLIGHT_PREDICTIONS = Asset(name="flight_predictions", group="mlops")

#: A day's batch predictions of the air-time model (batch_predict_air_time). extra: as
#: flight_predictions (ds, uri, rows, model_version, mean_prediction; no threshold: a regressor).
AIR_TIME_PREDICTIONS = Asset(name="air_time_predictions", group="mlops")

#: Batch predictions asset of each model spec with a shipped batch-scoring DAG, by spec name.
PREDICTIONS: dict[str, Asset] = {"flight_delay": FLIGHT_PREDICTIONS, "air_time": AIR_TIME_PREDICTIONS}


def predictions_asset(spec_name: str) -> Asset:
    """The batch predictions asset of the model spec ``spec_name``: :data:`PREDICTIONS`, else
    ``<spec_name>_predictions`` (a team's own spec needs no line here)."""
    return PREDICTIONS.get(spec_name) or Asset(name=f"{spec_name}_predictions", group="mlops")


#: A request to retrain, emitted by monitor_drift through the storm guard.
#: extra: reason, drifted_features {name: score}, report_uri, window_start, window_end, signature.
RETRAIN_REQUEST = Asset(name="retrain_request", group="mlops")

#: A request to retrain the air-time model, emitted by monitor_drift_air_time through that model's
#: own storm guard (starts train_air_time). extra: as retrain_request, plus spec and model_name.
AIR_TIME_RETRAIN_REQUEST = Asset(name="air_time_retrain_request", group="mlops")

#: Retrain request asset of each model spec with a shipped drift DAG, by spec name.
RETRAIN_REQUESTS: dict[str, Asset] = {"flight_delay": RETRAIN_REQUEST, "air_time": AIR_TIME_RETRAIN_REQUEST}


def retrain_request_asset(spec_name: str) -> Asset:
    """The retrain request asset of the model spec ``spec_name``: :data:`RETRAIN_REQUESTS`, else
    ``<spec_name>_retrain_request`` (a team's own spec needs no line here)."""
    return RETRAIN_REQUESTS.get(spec_name) or Asset(name=f"{spec_name}_retrain_request", group="mlops")


ALL_ASSETS = (
    FLIGHTS_LANDING,
    WEATHER_LANDING,
    CURATED_FLIGHTS,
    CURATED_WEATHER,
    FLIGHT_FEATURES,
    CHAMPION_MODEL,
    FLIGHT_PREDICTIONS,
    RETRAIN_REQUEST,
    AIR_TIME_RETRAIN_REQUEST,
    AIR_TIME_PREDICTIONS,
)
