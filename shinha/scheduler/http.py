"""The scheduler's HTTP interface: the pollers' pulls and results, the receivers' inbox.
Each handler checks the secret, reads the request's model, calls one method of the
scheduler's components and answers."""

from __future__ import annotations

from aiohttp import web

from shinha.http.server import check_secret, json_response, read_model
from shinha.scheduler.handout import Handout
from shinha.scheduler.results import Results
from shinha.wire import PullRequest, ResultBatch, SchedulerInbox


class SchedulerInterface:
    """POST /checks/pull, /checks/results and /inbox."""

    def __init__(self, secret: str, handout: Handout, results: Results) -> None:
        self.secret = secret
        self.handout = handout
        self.results = results

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/checks/pull", self.pull)
        app.router.add_post("/checks/results", self.take_results)
        app.router.add_post("/inbox", self.inbox)

    async def pull(self, request: web.Request) -> web.Response:
        check_secret(request, self.secret)
        pull = await read_model(request, PullRequest)
        # A hand-built JSON body (kept for speed): its round trip is tested in test_wire.
        body = await self.handout.pull(pull)
        return web.Response(body=body, content_type="application/json")

    async def take_results(self, request: web.Request) -> web.Response:
        check_secret(request, self.secret)
        batch = await read_model(request, ResultBatch)
        return json_response(await self.results.take_batch(batch))

    async def inbox(self, request: web.Request) -> web.Response:
        check_secret(request, self.secret)
        inbox = await read_model(request, SchedulerInbox)
        return json_response(await self.results.take_inbox(inbox))
