"""Result tarballs: gathered, packed, shipped to an ingress service, and that service."""
