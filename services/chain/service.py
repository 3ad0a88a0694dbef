"""A chained worker: the NER, DP and events stages in one process, one after the other on
each batch, for one machine (EVENTPIPE_CHAINED_WORKERS). No work topic lies between them, so
no stage waits on another or idles while another finishes, and NER and the parse share one
spaCy call. It reads the NER stage's topic, and the DP and events stages' topics too, where
replays, retries and reprocessing send documents: each enters the chain at its stage.

The events stage joins the chain with the rules backend only: a language model stays in its
own service (one loaded model, released while idle, batched across workers' documents)."""

from __future__ import annotations

from eventpipe.kafka.topics import Topics
from eventpipe.models import Stage
from eventpipe.nlp.events import build_backend
from eventpipe.nlp.model import load_pipeline, pipeline_id
from eventpipe.runtime.service import main_for
from eventpipe.runtime.stage import StageRunner, Step
from eventpipe.settings import Settings
from services.dp.service import make_process as dp_process
from services.llm.service import make_process as events_process
from services.ner.service import make_process as ner_process


def run(settings: Settings) -> None:
    topics = Topics.from_settings(settings)
    nlp = load_pipeline(settings.spacy_model)
    model = pipeline_id(nlp)
    then = [Step(Stage.DP, topics.ner, dp_process(nlp), model)]
    target = topics.dp
    if Stage.LLM.value in settings.chained_stages:  # else the llm service runs it
        then.append(Step(Stage.LLM, topics.dp, events_process(build_backend(settings)),
                         settings.llm_backend))
        target = topics.events
    StageRunner(settings, Stage.NER, topics.docs, target, ner_process(nlp), model=model,
                then=then, fused=dp_process(nlp, with_ner=True), service="chain").run()


main = main_for("chain", run)
