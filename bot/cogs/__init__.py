"""The bot's extensions, each loaded in ``RecipeBot.setup_hook``."""
