from .plugin import *
