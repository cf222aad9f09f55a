import multiprocessing

# The worker is chosen here, not on the command line.
worker_class = "uvicorn_worker.UvicornWorker"
bind = "0.0.0.0:8000"
workers = multiprocessing.cpu_count() * 2 + 1
timeout = 120
accesslog = "-"
