"""The flight-delay specs: the flights feed (:mod:`.feed`) and the delay classifier (:mod:`.model`)."""
