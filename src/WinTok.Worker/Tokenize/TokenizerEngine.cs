using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TorchSharp;
using WinTok.Inference;
using WinTok.Model;
using static TorchSharp.torch;

namespace WinTok.Worker.Tokenize;

/// <summary>The model a worker serves, as recorded in every shard it writes.</summary>
internal sealed record ServedModel(string Checkpoint, string Sha256, WinTokConfig Config, string ArgsJson, string Device, string Precision);

/// <summary>
/// Owns the model and the one thread that touches it. TorchSharp's dispose scopes and inference-mode guards are
/// thread-local and its CUDA work serialises on one stream anyway, so every tensor operation of the process runs on
/// this thread, one batch at a time, while callers await plain arrays (docs/torchsharp.md §3-4).
/// </summary>
internal sealed class TokenizerEngine : IDisposable
{
    private readonly BlockingCollection<Action> work = new(boundedCapacity: 8);
    private readonly Thread thread;
    private readonly TokenizeOptions options;
    private readonly ILogger<TokenizerEngine> logger;
    private TokenizerSession? session;
    private ServedModel? served;
    private (PendingTokens Batch, TaskCompletionSource<TokenBatch> Completion)? inFlight; // launched, not yet collected

    public TokenizerEngine(IOptions<TokenizeOptions> options, ILogger<TokenizerEngine> logger)
    {
        this.options = options.Value;
        this.logger = logger;
        thread = new Thread(Run) { IsBackground = true, Name = "wintok-model" };
        thread.Start();
    }

    /// <summary>Loads the checkpoint (once; a different one replaces it) and describes it.</summary>
    public Task<ServedModel> LoadAsync(string localCheckpoint, string? encoderPreset, CancellationToken cancellationToken) =>
        Submit(() => Ensure(localCheckpoint, encoderPreset), cancellationToken);

    /// <summary>
    /// Tokenizes <paramref name="count"/> preprocessed images (uint8 levels, CHW) with the loaded model. The batch is
    /// launched on the GPU and collected only after the next queued batch has been launched behind it, so the GPU
    /// never waits for the host to copy levels in and issue kernels; with nothing queued it is collected at once.
    /// </summary>
    public Task<TokenBatch> TokenizeAsync(string localCheckpoint, string? encoderPreset, byte[] levels, int count, bool semantic,
        CancellationToken cancellationToken)
    {
        var completion = new TaskCompletionSource<TokenBatch>(TaskCreationOptions.RunContinuationsAsynchronously);
        work.Add(() =>
        {
            if (cancellationToken.IsCancellationRequested)
            {
                completion.TrySetCanceled(cancellationToken);
                return;
            }
            PendingTokens launched;
            try
            {
                Ensure(localCheckpoint, encoderPreset);
                launched = session!.Launch(levels, count, semantic);
            }
            catch (Exception e)
            {
                completion.TrySetException(e);
                return;
            }
            FinishInFlight(); // the previous batch: the GPU has finished it or is about to
            inFlight = (launched, completion);
        }, cancellationToken);
        return completion.Task;
    }

    /// <summary>Serves an already built model under <paramref name="key"/>, for benchmarks and tests without a checkpoint file.</summary>
    internal Task<ServedModel> ServeAsync(string key, WinTokModel model, CancellationToken cancellationToken) =>
        Submit(() => Serve(key, "none", model), cancellationToken);

    /// <summary>Images per call: the configured size, or 128 on a GPU and 8 on the CPU.</summary>
    public int BatchSize => options.BatchSize > 0 ? options.BatchSize : IsCuda ? 128 : 8;

    private bool IsCuda => ResolveDevice().type == DeviceType.CUDA;

    private Task<T> Submit<T>(Func<T> job, CancellationToken cancellationToken)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        work.Add(() =>
        {
            if (cancellationToken.IsCancellationRequested)
            {
                completion.TrySetCanceled(cancellationToken);
                return;
            }
            try
            {
                completion.TrySetResult(job());
            }
            catch (Exception e)
            {
                completion.TrySetException(e);
            }
        }, cancellationToken);
        return completion.Task;
    }

    private ServedModel Ensure(string localCheckpoint, string? encoderPreset)
    {
        if (served is not null && served.Checkpoint == localCheckpoint) return served;
        Log.LoadingModel(logger, localCheckpoint, ResolveDevice().ToString());
        var started = TimeProvider.System.GetTimestamp();
        var encoder = encoderPreset is null ? null
            : EncoderShape.Presets.TryGetValue(encoderPreset, out var preset) ? preset
            : throw new ArgumentException($"Unknown encoder preset '{encoderPreset}'; choose one of {string.Join(", ", EncoderShape.Presets.Keys)}");
        var loaded = WinTokCheckpoint.Load(localCheckpoint, encoder);
        var model = Serve(localCheckpoint, loaded.Sha256, loaded.Model);
        Log.LoadedModel(logger, localCheckpoint, loaded.Sha256, model.Device, model.Precision,
            (long)TimeProvider.System.GetElapsedTime(started).TotalMilliseconds);
        return model;
    }

    /// <summary>Replaces the served model: bf16 stacks on a GPU, float32 on the CPU.</summary>
    private ServedModel Serve(string key, string sha256, WinTokModel model)
    {
        FinishInFlight(); // it belongs to the session about to go
        session?.Model.Dispose();
        session?.Dispose();
        var device = ResolveDevice();
        var precision = device.type == DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32;
        session = new TokenizerSession(model, device, precision);
        served = new ServedModel(key, sha256, model.Config, JsonSerializer.Serialize(ReferenceArgs.FromConfig(model.Config)),
            device.ToString(), precision.ToString());
        return served;
    }

    private Device ResolveDevice()
    {
        if (options.Device != "auto") return new Device(options.Device);
        return cuda.is_available() ? CUDA : CPU;
    }

    private void Run()
    {
        if (IsCuda) set_num_threads(2); // decode threads need the cores; the GPU does the model's work
        foreach (var item in work.GetConsumingEnumerable())
        {
            item();
            // While the launched batch runs, launch the next one the moment it is queued (that item collects this
            // batch); otherwise hand this batch's tokens back as soon as the GPU has finished it.
            while (inFlight is { } current && !work.IsAddingCompleted)
            {
                if (work.TryTake(out var next)) next();
                else if (current.Batch.IsComplete) FinishInFlight();
                else if (work.TryTake(out next, millisecondsTimeout: 1)) next();
            }
            FinishInFlight();
        }
        FinishInFlight();
    }

    private void FinishInFlight()
    {
        if (inFlight is not { } current) return;
        inFlight = null;
        try
        {
            current.Completion.TrySetResult(session!.Collect(current.Batch));
        }
        catch (Exception e)
        {
            current.Completion.TrySetException(e);
        }
    }

    public void Dispose()
    {
        work.CompleteAdding();
        thread.Join(TimeSpan.FromSeconds(30));
        session?.Model.Dispose();
        session?.Dispose();
        work.Dispose();
    }
}
