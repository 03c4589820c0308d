"""A Flask JSON API of jokes; the app is jokes.app:app."""
