"""Chat: conversations with cloud and local language models.

:class:`~miso_runtime.chat.service.ChatService` turns a chat request into a stream of
:mod:`events <miso_runtime.chat.events>`; providers in :mod:`miso_runtime.chat.providers`
speak each vendor's API through its official client library.
"""
