"""Keras 2 (tf_keras) and QKeras: the environment, loading users' models, building and training spec models."""
