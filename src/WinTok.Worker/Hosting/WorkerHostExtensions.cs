using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using WinTok.Contracts;
using WinTok.Inference;
using WinTok.Jobs;
using WinTok.Jobs.Checkpoints;
using WinTok.Messaging;
using WinTok.Model;
using WinTok.Results;
using WinTok.ServiceDefaults;
using WinTok.Worker.Checkpoints;
using WinTok.Worker.Evaluate;
using WinTok.Worker.Partitions;
using WinTok.Worker.Telemetry;
using WinTok.Worker.Tokenize;
using WinTok.Worker.Train;

namespace WinTok.Worker.Hosting;

/// <summary>The worker's composition: one <c>Add…</c> per concern, called by `wintok worker` and by the CLI's verbs.</summary>
public static class WorkerHostExtensions
{
    /// <summary>
    /// Everything a worker process runs, for <paramref name="transport"/>'s queue: the results database, the job queue
    /// with a consumer per job kind, the control plane, the model thread and the health file (registered before the
    /// consumers: hosted services stop in reverse order, so the file outlives the drain).
    /// </summary>
    public static IHostApplicationBuilder AddWinTokWorker(this IHostApplicationBuilder builder, bool healthFile = true)
    {
        builder.AddResultsStore();
        if (healthFile) builder.AddHealthFile();
        var queue = builder.AddJobQueue();
        builder.AddJobControl();
        builder.AddModelThread();
        builder.AddPartitionRunner();
        builder.AddWorkerHeartbeat();
        queue.Handle<TokenizePartition, TokenizePartitionHandler>();
        queue.Handle<EvaluatePartition, EvaluatePartitionHandler>();
        // One message is a whole training run: hours to days, its lease renewed all along (JobQueue:HandlerTimeouts:TrainRun).
        queue.Handle<TrainRun, TrainRunHandler>(handlerTimeout: TimeSpan.FromDays(7));
        // Nor may it run under the Partition pipeline's total timeout (minutes): its runner retries nothing itself, the run
        // restarts its data stream at its position after a storage hiccup.
        builder.Services.TryAddKeyedSingleton(TrainRunHandler.RunnerKey,
            (services, _) => ActivatorUtilities.CreateInstance<PartitionRunner>(services, Polly.ResiliencePipeline.Empty));
        return builder;
    }

    /// <summary>The worker's row in <c>workers</c>, refreshed every <c>Worker:HeartbeatInterval</c> (after AddPartitionRunner).</summary>
    public static IHostApplicationBuilder AddWorkerHeartbeat(this IHostApplicationBuilder builder)
    {
        builder.Services.AddHostedService<WorkerHeartbeatService>();
        return builder;
    }

    /// <summary>
    /// What submitting needs beyond the control plane: reading checkpoints' configuration (the model side knows the
    /// formats). For verbs that submit without running a worker.
    /// </summary>
    public static IHostApplicationBuilder AddCheckpointInspector(this IHostApplicationBuilder builder)
    {
        builder.Services.TryAddSingleton<ICheckpointInspector, CheckpointInspector>();
        return builder;
    }

    /// <summary>The one model thread of the process, configured from section <c>Model</c>.</summary>
    public static IHostApplicationBuilder AddModelThread(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<ModelOptions>().BindConfiguration(ModelOptions.SectionName).ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ModelOptions>, ModelOptionsValidator>());
        builder.Services.TryAddSingleton(services =>
        {
            var options = services.GetRequiredService<IOptions<ModelOptions>>().Value;
            var settings = new ModelThreadSettings(options.Device, options.BatchSize,
                new CudaFastPaths(options.CublasLt, options.FusedLayerNorm, options.FusedCodeSearch, options.ConvolutionRewrites));
            return new ModelThread(settings, services.GetRequiredService<ILogger<ModelThread>>());
        });
        builder.AddCheckpointInspector();
        return builder;
    }

    /// <summary>
    /// The rules every partition handler runs under (<see cref="PartitionRunner"/>), the worker's options (section
    /// <c>Worker</c>), the named <c>Partition</c> retry pipeline, and the tokenize pipeline's parts.
    /// </summary>
    public static IHostApplicationBuilder AddPartitionRunner(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<WorkerOptions>().BindConfiguration(WorkerOptions.SectionName).ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<WorkerOptions>, WorkerOptionsValidator>());
        // A storage outage in the middle of a partition restarts the partition, with backoff, instead of burning the
        // message's delivery limit in seconds. A create-only conflict is not transient: two attempts disagree.
        builder.AddRetryPipeline(PartitionRunner.PipelineKey, PartitionRules.IsTransientStorage, defaults =>
        {
            defaults.MaxRetryAttempts = 6;
            defaults.BaseDelay = TimeSpan.FromSeconds(2);
            defaults.MaxDelay = TimeSpan.FromSeconds(30);
            defaults.TotalTimeout = TimeSpan.FromMinutes(30);
        });
        builder.Services.TryAddSingleton<PartitionRunner>();
        builder.Services.TryAddSingleton<PartitionTokenizer>();
        builder.Services.TryAddSingleton<TokenizeProgress>();
        builder.Services.TryAddSingleton<WorkerStatus>();
        builder.Services.TryAddSingleton<GpuMemoryProbe>();
        builder.Services.TryAddSingleton<WorkerMetrics>();
        return builder;
    }

    /// <summary>The worker's health file (section <c>Worker</c>: <c>HealthFile</c>, <c>HealthFileInterval</c>).</summary>
    public static IHostApplicationBuilder AddHealthFile(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<WorkerOptions>().BindConfiguration(WorkerOptions.SectionName).ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<WorkerOptions>, WorkerOptionsValidator>());
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddHostedService<HealthFileService>();
        return builder;
    }
}
