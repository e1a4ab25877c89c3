"""files / URLs / a folder ─ embed-knowledge ▶ knowledge_base + knowledge_chunks (pgvector + full text)"""

from __future__ import annotations

from prefect import flow, get_run_logger

from proposalflow.errors import ValidationFailed
from proposalflow.knowledge.ingest import KnowledgeSummary, batched
from proposalflow.knowledge.uploads import StoredUpload
from proposalflow.settings import get_settings
from tasks.knowledge import (embed_sources, embed_uploads, finish_knowledge_base, list_sources,
                             prepare_knowledge_base, prune_documents, reembed_documents)


@flow(name="embed-knowledge")
def embed_knowledge(folder: str | None = None, urls: list[str] | None = None, files: list[str] | None = None,
                    prune: bool = False, category: str | None = None, reembed: bool = False,
                    uploads: list[StoredUpload] | None = None) -> dict:
    """Embed a folder (recursively: .md .txt .html .pdf .docx), files and/or URLs into the knowledge base.

    Unchanged documents are skipped; a changed one has its chunks replaced atomically; a document
    that cannot be read is recorded in `knowledge_failures` and the others go on. `prune` deletes
    the documents under `folder` whose file is gone. `reembed` first re-embeds every stored
    document with the configured model (after a model change). With no sources and no `reembed`,
    the folder in PROPOSALFLOW_KNOWLEDGE_DIR is embedded (what the scheduled run does); with that
    unset too the run completes at once, its result and log saying why (`skipped`). `uploads`
    are originals the API kept in the file store (read back from it; the result lists each one's document).
    """
    settings = get_settings()
    if not (folder or urls or files or reembed or uploads):
        if any(given is not None for given in (folder, urls, files, uploads)):  # given, but empty
            raise ValidationFailed("nothing to embed: the sources given are empty")
        if settings.kb_folder is None:  # the scheduled run on a deployment with no knowledge folder
            reason = "nothing to embed: no sources given and PROPOSALFLOW_KNOWLEDGE_DIR is not set"
            get_run_logger().info("skipped: %s (set it on the workers, or pause this schedule)", reason)
            return {**KnowledgeSummary().as_dict(), "skipped": reason}
        folder = str(settings.kb_folder)
    if prune and not folder:
        raise ValidationFailed("--prune needs a folder: it deletes the documents whose file left that folder")

    prepare_knowledge_base(reembed)
    summary = KnowledgeSummary()
    after = ""
    while reembed and (batch := reembed_documents(after)) is not None:
        after, part = batch
        summary.add(part)
    sources = list_sources(folder, files, urls, category)
    for batch in batched(sources, settings.kb_batch_documents):
        summary.add(embed_sources(batch))
    uploaded: list[dict] = []
    for batch in batched(uploads or [], settings.kb_batch_documents):  # originals kept in the file store
        part, outcomes = embed_uploads(batch, category)
        summary.add(part)
        uploaded += outcomes
    if prune:
        summary.pruned = len(prune_documents(folder, summary.seen))
    totals = finish_knowledge_base(changed=bool(summary.embedded or summary.pruned or reembed))
    return {**summary.as_dict(), "totals": totals, **({"uploads": uploaded} if uploads else {})}
