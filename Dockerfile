# syntax=docker/dockerfile:1
#
# The `wintok` image: one CLI (tokenize | submit | worker | jobs | dashboard | verify | migrate) on the ASP.NET Core 10
# runtime (the dashboard is a web app; the other verbs need only the .NET runtime it includes).
#
#   docker build -t wintok:cpu  .                               # libtorch-cpu-linux-x64, .NET runtime on Ubuntu 24.04
#   docker build -t wintok:cuda --build-arg TORCH_VARIANT=cuda . # libtorch-cuda-12.8-linux-x64 on a CUDA 12.8 base
#
# TorchSharp 0.107's libLibTorchSharp.so needs GLIBCXX_3.4.32 and GLIBC_2.34, so every runtime base here is Ubuntu
# 24.04 (noble) or newer; Debian 12 images, including older default .NET tags, cannot load it (docs: torchsharp.md §10-11).
# The CUDA libtorch comes as split NuGet packages that an MSBuild task restitches inside the NuGet cache on the first
# build: restore and publish therefore run in one stage with a writable cache and several GB of free temp space.
# deploy/README.md has the build, push and install steps.

ARG TORCH_VARIANT=cpu
ARG DOTNET_SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0-noble
ARG DOTNET_RUNTIME_IMAGE=mcr.microsoft.com/dotnet/aspnet:10.0-noble
# The libtorch package bundles cuDNN, cuBLAS and the CUDA runtime; the cudnn-runtime base also brings cuFFT, cuRAND,
# cuSOLVER, cuSPARSE and NCCL, which libtorch_cuda.so may load. The driver comes from the node (NVIDIA toolkit).
ARG CUDA_BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# ---- build ---------------------------------------------------------------------------------------------------------
FROM ${DOTNET_SDK_IMAGE} AS build
ARG TORCH_VARIANT
WORKDIR /src

# Restore is its own layer: it reruns only when a project file, the central versions or the SDK pin change.
COPY *.sln global.json Directory.Build.props Directory.Build.targets Directory.Packages.props ./
COPY src/*/*.csproj src/
# Each project lives in src/<Name>/<Name>.csproj; put the flat copies back where they belong.
RUN for project in src/*.csproj; do \
        name="$(basename "$project" .csproj)"; mkdir -p "src/$name" && mv "$project" "src/$name/"; \
    done
RUN dotnet restore src/WinTok.Cli/WinTok.Cli.csproj -r linux-x64 -p:TorchVariant=${TORCH_VARIANT}

# .editorconfig feeds the analyzers (warnings are errors), so the build must see the same one as CI.
COPY .editorconfig ./
COPY src/ src/
# -r linux-x64 flattens the libtorch natives into /app, so TorchSharp never falls back to copying them out of the NuGet
# cache at run time. For cuda this step also restitches the split packages in the NuGet cache (needs GBs of temp space).
RUN dotnet publish src/WinTok.Cli/WinTok.Cli.csproj -c Release -r linux-x64 --self-contained false --no-restore \
        -p:TorchVariant=${TORCH_VARIANT} -o /app \
    && printf '#!/bin/sh\nexec dotnet /app/WinTok.Cli.dll "$@"\n' > /app/wintok \
    && chmod 0755 /app/wintok

# ---- runtime: cpu ----------------------------------------------------------------------------------------------------
# Microsoft's image already has the non-root `app` user and APP_UID=1654.
FROM ${DOTNET_RUNTIME_IMAGE} AS runtime-cpu

# ---- runtime: cuda ---------------------------------------------------------------------------------------------------
FROM ${CUDA_BASE_IMAGE} AS runtime-cuda
# Same user id as Microsoft's images, so `USER $APP_UID` and the chart's runAsUser mean the same thing for both variants.
ENV APP_UID=1654
# What the .NET runtime needs on Ubuntu 24.04 (no ICU: the projects set InvariantGlobalization).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3t64 tzdata zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid "$APP_UID" app \
    && useradd --uid "$APP_UID" --gid app --create-home --shell /usr/sbin/nologin app
# Microsoft's runtime image is Ubuntu 24.04 too, so its /usr/share/dotnet (.NET and ASP.NET Core) runs unchanged here.
COPY --from=runtime-cpu /usr/share/dotnet /usr/share/dotnet
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet && dotnet --list-runtimes

# ---- final -----------------------------------------------------------------------------------------------------------
FROM runtime-${TORCH_VARIANT} AS final
ARG TORCH_VARIANT
LABEL org.opencontainers.image.title="wintok" \
      org.opencontainers.image.description="WinTok visual tokenizer: pretokenization CLI and GPU worker (libtorch ${TORCH_VARIANT})"
# TorchSharp has no empty_cache, so cached CUDA blocks stay reserved; expandable segments keep fragmentation down
# (torchsharp.md §13). Harmless on the CPU variant. No connection strings here: the chart injects them from a Secret.
ENV DOTNET_ENVIRONMENT=Production \
    WINTOK_TORCH_VARIANT=${TORCH_VARIANT} \
    PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
WORKDIR /app
COPY --from=build --chown=root:root /app /app
RUN ln -s /app/wintok /usr/local/bin/wintok
USER $APP_UID
ENTRYPOINT ["dotnet", "/app/WinTok.Cli.dll"]
CMD ["--help"]
