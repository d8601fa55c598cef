"""The data docs index builder the gate's site uses (``validate._context``); imported by Great Expectations only.

Great Expectations' ``DefaultSiteIndexBuilder`` lists the most recent validation results on the index and, to show
each one's verdict and asset, loads every listed result whole (marshmallow, every expectation's result): with the
200 results ``data_docs_history`` keeps listed, about 2 s of CPU on every gate run, more than the nightly
validation of some tables. :class:`LeanSiteIndexBuilder` renders the same index, reading only the verdict and the
batch metadata of each stored result's JSON.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from typing import Any

from great_expectations.render.renderer.site_builder import FALSEY_YAML_STRINGS, DefaultSiteIndexBuilder
from great_expectations.render.util import resource_key_passes_run_name_filter

logger = logging.getLogger(__name__)


class LeanSiteIndexBuilder(DefaultSiteIndexBuilder):
    """``DefaultSiteIndexBuilder`` whose validation links read a result's ``success`` and ``meta`` only."""

    def _add_validations_to_index_links(
        self, index_links_dict: OrderedDict, validation_and_profiling_result_site_keys: list[Any]
    ) -> None:
        validations = self.site_section_builders_config.get("validations", "None")
        if not validations or validations in FALSEY_YAML_STRINGS:
            return
        run_name_filter = self.site_section_builders_config["validations"]["run_name_filter"]
        keys = [
            k
            for k in validation_and_profiling_result_site_keys
            if resource_key_passes_run_name_filter(k, run_name_filter)
        ]
        keys = sorted(keys, key=lambda k: k.run_id.run_time, reverse=True)
        if self.validation_results_limit:
            keys = keys[: self.validation_results_limit]
        store = self.data_context.stores[self.source_stores.get("validations")]
        for key in keys:
            try:
                head = _verdict_and_meta(store.store_backend.get(store.key_to_tuple(key)))
            except Exception:  # as the default builder: a result that cannot be read is skipped, loudly
                logger.warning("Validation result not found: %s - skipping", key.to_tuple())
                continue
            meta = head.get("meta") or {}
            batch_kwargs, batch_spec = meta.get("batch_kwargs", {}), meta.get("batch_spec", {})
            asset_name = batch_kwargs.get("data_asset_name") or batch_spec.get("data_asset_name")
            if not asset_name and "active_batch_definition" in meta:
                asset_name = meta["active_batch_definition"].get("data_asset_name")
            self.add_resource_info_to_index_links_dict(
                index_links_dict=index_links_dict,
                expectation_suite_name=key.expectation_suite_identifier.name,
                section_name="validations",
                batch_identifier=key.batch_identifier,
                run_id=key.run_id,
                validation_success=head.get("success"),
                run_time=key.run_id.run_time,
                run_name=key.run_id.run_name,
                asset_name=asset_name or None,
                batch_kwargs=batch_kwargs,
                batch_spec=batch_spec,
            )


def _verdict_and_meta(stored: Any) -> dict[str, Any]:
    """``success`` and ``meta`` of a stored validation result (its JSON text)."""
    document = json.loads(stored) if isinstance(stored, str | bytes) else dict(stored)
    return {"success": document.get("success"), "meta": document.get("meta")}
