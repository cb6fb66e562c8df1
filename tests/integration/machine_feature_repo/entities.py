"""Entities of the machine_sites feature set: a site on one day (``"north|2013-03-09"``)."""

from feast import Entity, ValueType

site_day = Entity(name="site_day", join_keys=["site_day"], value_type=ValueType.STRING)
