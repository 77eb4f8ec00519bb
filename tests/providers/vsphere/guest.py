"""The guest stand-in lives in the product's lab (nsxkube.lab.guest); tests import it from there."""

from nsxkube.lab.guest import GuestSimulator, decode_guestinfo

__all__ = ["GuestSimulator", "decode_guestinfo"]
