"""aigi: tell real photographs from AI-generated images."""
