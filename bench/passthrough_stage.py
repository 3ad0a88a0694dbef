"""A stage that passes documents through unchanged: the NER, DP and events stages replaced,
so that what bench/scaling.py measures is the Kafka, sink and checkpoint path.

    python bench/passthrough_stage.py ner|dp|llm   (settings from EVENTPIPE_* as usual)"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from eventpipe.kafka.topics import Topics
from eventpipe.logs import setup_logging
from eventpipe.models import DocumentMessage, Stage
from eventpipe.runtime.stage import StageResult, StageRunner
from eventpipe.settings import Settings


def identity(docs: Sequence[DocumentMessage]) -> list[StageResult]:
    return list(docs)


def main() -> None:
    stage = Stage(sys.argv[1])
    settings = Settings()
    setup_logging(settings.log_level, f"passthrough-{stage.value}")
    t = Topics.from_settings(settings)
    source, target = {Stage.NER: (t.docs, t.ner), Stage.DP: (t.ner, t.dp),
                      Stage.LLM: (t.dp, t.events)}[stage]
    StageRunner(settings, stage, source, target, identity).run()


if __name__ == "__main__":
    main()
