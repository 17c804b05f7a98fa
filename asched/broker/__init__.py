"""Broker dispatch over RabbitMQ: schedulers decide when, stateless workers run.

- :mod:`asched.broker.codec`: JSON messages, optional HMAC signing, a size limit
- :mod:`asched.broker.names` / :mod:`asched.broker.topology`: every queue and exchange
- :mod:`asched.broker.link`: one connection kept up, reconnecting with backoff
- :mod:`asched.broker.protocol`: the messages both sides exchange
- :mod:`asched.broker.worker`: the ``asched worker`` runtime
- :mod:`asched.executors.distributed`: the scheduler side (``executor="distributed"``)

Needs the ``amqp`` extra (``pip install asched[amqp]``).
"""

from __future__ import annotations
