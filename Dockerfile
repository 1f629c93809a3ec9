# graphwren's Lambda worker as a container image (up to 10 GB; no 250 MB zip limit).
#   docker build -t graphwren-lambda .
#   aws ecr create-repository --repository-name graphwren
#   docker tag graphwren-lambda ACCOUNT.dkr.ecr.REGION.amazonaws.com/graphwren:0.1.0
#   docker push ACCOUNT.dkr.ecr.REGION.amazonaws.com/graphwren:0.1.0
#   graphwren lambda deploy --image ACCOUNT.dkr.ecr.REGION.amazonaws.com/graphwren:0.1.0 --memory 2048 --timeout 900
# The Python version must match the driver's (stage functions are pickled): pass --build-arg PYTHON=3.11 etc.
ARG PYTHON=3.11
FROM public.ecr.aws/lambda/python:${PYTHON}

# The runtime: graphwren plus numpy, pyarrow, cloudpickle, boto3, redis (pyproject's dependencies).
COPY pyproject.toml README.md* ${LAMBDA_TASK_ROOT}/src/
COPY graphwren ${LAMBDA_TASK_ROOT}/src/graphwren
RUN pip install --no-cache-dir ${LAMBDA_TASK_ROOT}/src && rm -rf ${LAMBDA_TASK_ROOT}/src \
    && python -c "import graphwren.runtime.lambda_handler, numpy, pyarrow, cloudpickle, boto3, redis"

# The base image's entry point runs AWS's runtime interface client (awslambdaric) on this handler.
CMD ["graphwren.runtime.lambda_handler.handler"]
