"""Cross-region coordination: verification packets (协查单), police rosters, feedback (反馈)."""
from reconcile.coordination.feedback import FeedbackStatus, FileImport, feedback_status, import_feedback
from reconcile.coordination.findings import Finding, build_findings, police_roster
from reconcile.coordination.ledger import ensure_ledger, request_id
from reconcile.coordination.packets import ExportResult, export_packets

__all__ = [
    "ExportResult", "FeedbackStatus", "FileImport", "Finding", "build_findings", "ensure_ledger", "export_packets",
    "feedback_status", "import_feedback", "police_roster", "request_id",
]
