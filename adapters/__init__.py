"""Platform adapters: local/Render server and CLI, AWS Lambda handler, cron entry points."""
