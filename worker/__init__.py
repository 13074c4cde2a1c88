"""Job execution: runners (Celery, in-process thread), the job function, kinds, reaper."""
