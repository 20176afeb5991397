"""The sweep spec file: parsing, validation problems and their messages."""
