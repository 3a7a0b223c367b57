"""Label Studio ML backends that serve catalog models as pre-annotations."""
