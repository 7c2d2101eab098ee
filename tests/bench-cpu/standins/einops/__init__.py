# CPU test stand-in for einops (not installed here): only what the references use.
__version__ = 'standin'
