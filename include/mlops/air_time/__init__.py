"""The air-time model spec (:mod:`.model`): minutes in the air, the number airlines pad schedules with."""
