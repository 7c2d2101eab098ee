using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using WinTok.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace WinTok.Inference;

/// <summary>How a process runs its models.</summary>
/// <param name="Device"><c>cuda</c>, <c>cuda:N</c> or <c>cpu</c>; <c>auto</c> picks CUDA when a GPU is visible.</param>
/// <param name="BatchSize">Images per model call; 0 means 128 on a GPU and 8 on the CPU.</param>
/// <param name="FastPaths">Which of our CUDA paths bf16 inference may take (<see cref="CudaFastPaths"/>).</param>
public sealed record ModelThreadSettings(string Device = "auto", int BatchSize = 0, CudaFastPaths? FastPaths = null);

/// <summary>How precisely a served model computes.</summary>
public enum ModelPrecision
{
    /// <summary>The serving path: bf16 transformer stacks (projections and quantizer fp32) on a GPU, fp32 on the CPU.</summary>
    Serving,

    /// <summary>float32 throughout, as the reference evaluates (TF32 off).</summary>
    Float32,
}

/// <summary>Where a model comes from: a local checkpoint file, its known content hash, how to read it and run it.</summary>
public sealed record ModelSource(string LocalPath, string Sha256, ModelLoadOptions Options, ModelPrecision Precision = ModelPrecision.Serving);

/// <summary>The model a process serves, described without tensors (recorded in every shard and result).</summary>
public sealed record ServedModel(string Sha256, ModelDescription Description, string Device, string Precision);

/// <summary>
/// The one owner of the device in a process, and the one thread that touches it. TorchSharp's dispose scopes and
/// inference-mode guards are thread-local and its CUDA work serialises on one stream anyway, so every tensor operation
/// of a worker runs here, one item at a time, while callers await plain arrays (docs/torchsharp.md §3-4). It serves one
/// checkpoint at a time (a different one replaces it) and runs any work a job brings: tokenize batches (pipelined, see
/// <see cref="TokenizeAsync"/>), evaluation batches, training steps (<see cref="RunAsync"/>).
/// </summary>
public sealed class ModelThread : IDisposable
{
    private readonly BlockingCollection<Action> work = new(boundedCapacity: 8);
    private readonly Thread thread;
    private readonly ModelThreadSettings settings;
    private readonly ILogger<ModelThread> logger;
    private readonly Lazy<Device> device;
    private TokenizerSession? session;
    private ServedModel? served;
    private string? servedKey;
    private (PendingTokens Batch, TaskCompletionSource<TokenBatch> Completion)? inFlight; // launched, not yet collected
    private readonly Dictionary<string, IDisposable> attachments = [];

    public ModelThread(ModelThreadSettings settings, ILogger<ModelThread> logger)
    {
        this.settings = settings;
        this.logger = logger;
        device = new Lazy<Device>(() => settings.Device == "auto" ? cuda.is_available() ? CUDA : CPU : new Device(settings.Device));
        thread = new Thread(Run) { IsBackground = true, Name = "wintok-model" };
        thread.Start();
    }

    /// <summary>Images per call: the configured size, or 128 on a GPU and 8 on the CPU.</summary>
    public int BatchSize => settings.BatchSize > 0 ? settings.BatchSize : IsCuda ? 128 : 8;

    /// <summary>The device, as torch names it (<c>cuda:0</c>, <c>cpu</c>).</summary>
    public string DeviceName => Device.ToString();

    internal Device Device => device.Value;

    private bool IsCuda => Device.type == DeviceType.CUDA;

    /// <summary>Loads the checkpoint (once; a different one replaces it) and describes it.</summary>
    public Task<ServedModel> LoadAsync(ModelSource source, CancellationToken cancellationToken) =>
        RunAsync(() => Ensure(source), cancellationToken);

    /// <summary>
    /// Tokenizes <paramref name="count"/> preprocessed images (uint8 levels, CHW) with the model of
    /// <paramref name="source"/>. The batch is launched on the GPU and collected only after the next queued batch has been
    /// launched behind it, so the GPU never waits for the host to copy levels in and issue kernels; with nothing queued it
    /// is collected at once.
    /// </summary>
    public Task<TokenBatch> TokenizeAsync(ModelSource source, byte[] levels, int count, bool semantic, CancellationToken cancellationToken)
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
                Ensure(source);
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

    /// <summary>
    /// Runs <paramref name="job"/> on the device thread and returns its result. The job is synchronous tensor code that
    /// opens its own dispose scope and returns plain values; it sees the served model through <see cref="Model"/>.
    /// </summary>
    public Task<T> RunAsync<T>(Func<T> job, CancellationToken cancellationToken)
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

    /// <summary>
    /// The model of <paramref name="source"/>, loaded if it is not the one served. Only valid on the device thread,
    /// i.e. inside a <see cref="RunAsync"/> job.
    /// </summary>
    public ITokenizerModel Model(ModelSource source)
    {
        if (Thread.CurrentThread != thread) throw new InvalidOperationException("The served model is only reachable on the model thread");
        Ensure(source);
        return session!.Model;
    }

    /// <summary>
    /// The served model's companion of type <typeparamref name="T"/> under <paramref name="key"/> (e.g. an evaluation's
    /// metric networks), created on first use and disposed when the served model changes or the thread stops. Only
    /// valid on the device thread, i.e. inside a <see cref="RunAsync"/> job.
    /// </summary>
    public T Attachment<T>(string key, Func<ITokenizerModel, Device, T> create) where T : class, IDisposable
    {
        if (Thread.CurrentThread != thread) throw new InvalidOperationException("Attachments are only reachable on the model thread");
        if (session is null) throw new InvalidOperationException("No model is served yet");
        if (attachments.TryGetValue(key, out var existing)) return (T)existing;
        var created = create(session.Model, Device);
        attachments[key] = created;
        return created;
    }

    private void DisposeAttachments()
    {
        foreach (var attachment in attachments.Values) attachment.Dispose();
        attachments.Clear();
    }

    /// <summary>Serves an already built model as <paramref name="source"/>'s, for benchmarks and tests without a checkpoint file.</summary>
    public Task<ServedModel> ServeAsync(ModelSource source, ITokenizerModel model, CancellationToken cancellationToken) =>
        RunAsync(() => Serve(KeyOf(source), source.Sha256, model, source.Precision), cancellationToken);

    /// <summary>Two sources are the same model when the content and the way it is read are the same (not the path).</summary>
    private static string KeyOf(ModelSource source) => $"{source.Sha256}|{source.Options}|{source.Precision}";

    private ServedModel Ensure(ModelSource source)
    {
        var key = KeyOf(source);
        if (served is not null && servedKey == key) return served;
        Log.LoadingModel(logger, source.LocalPath, Device.ToString());
        var started = TimeProvider.System.GetTimestamp();
        var loaded = TokenizerCheckpoints.Load(source.LocalPath, source.Options, source.Sha256);
        var model = Serve(key, source.Sha256, loaded.Model, source.Precision);
        Log.LoadedModel(logger, source.LocalPath, source.Sha256, model.Description.Kind, model.Device, model.Precision,
            (long)TimeProvider.System.GetElapsedTime(started).TotalMilliseconds);
        return model;
    }

    /// <summary>Replaces the served model: on the serving path bf16 stacks on a GPU, float32 on the CPU.</summary>
    private ServedModel Serve(string key, string sha256, ITokenizerModel model, ModelPrecision requested)
    {
        FinishInFlight(); // it belongs to the session about to go
        DisposeAttachments();
        session?.Model.Dispose();
        session?.Dispose();
        session = null;
        var precision = IsCuda && requested == ModelPrecision.Serving ? ScalarType.BFloat16 : ScalarType.Float32;
        model.PrepareForInference(Device, precision, settings.FastPaths ?? CudaFastPaths.All);
        session = new TokenizerSession(model, Device);
        served = new ServedModel(sha256, model.Description, Device.ToString(), precision.ToString());
        servedKey = key;
        return served;
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
        DisposeAttachments();
        session?.Model.Dispose();
        session?.Dispose();
        work.Dispose();
    }
}
