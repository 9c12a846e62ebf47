"""The lab's balance driver (a stand-in, written as IvoryOS's example decks write drivers)."""


class Balance:
    """A balance on a serial port."""

    def __init__(self, com_port: str):
        self.com_port = com_port
        self._grams = 0.0

    def dose_solid(self, amount_in_mg: float = 5.0):
        """Dose a solid onto the pan."""
        self._grams += amount_in_mg / 1000
        return self._grams

    def weigh_sample(self) -> float:
        """The weight on the pan, in grams."""
        return round(self._grams, 4)
