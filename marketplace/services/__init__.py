"""Services write: every rule of the site lives here, behind keyword-only functions named <thing>_<verb>."""
