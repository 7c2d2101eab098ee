using WinTok.Inference;

namespace WinTok.Training;

/// <summary>
/// A training run as a caller off the model thread sees it: every call runs its <see cref="TrainingSession"/> on the
/// <see cref="ModelThread"/> and returns plain values, so a job handler trains without touching tensors. The session
/// belongs to this object, not to the thread's served model, so tokenize or evaluation work on the same thread cannot
/// unload it.
/// </summary>
public sealed class TrainingOnThread : IAsyncDisposable
{
    private readonly ModelThread thread;
    private readonly TrainingSession session;

    private TrainingOnThread(ModelThread thread, TrainingSession session, int imageSize)
    {
        (this.thread, this.session, ImageSize) = (thread, session, imageSize);
    }

    /// <summary>The model's image side.</summary>
    public int ImageSize { get; }

    /// <summary>The device the run trains on, as torch names it.</summary>
    public string DeviceName => thread.DeviceName;

    /// <summary>Builds the run's networks on the model thread's device (see <see cref="TrainingSession.Create"/>).</summary>
    public static async Task<TrainingOnThread> StartAsync(ModelThread thread, TrainingSetup setup, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(thread);
        var session = await thread.RunAsync(() => TrainingSession.Create(setup, thread.Device), cancellationToken);
        return new TrainingOnThread(thread, session, session.ImageSize);
    }

    /// <summary>Trainable parameters of the generator and of the discriminator's heads.</summary>
    public Task<(long Generator, long Discriminator)> ParameterCountsAsync(CancellationToken cancellationToken) =>
        thread.RunAsync(() => session.ParameterCounts, cancellationToken);

    public Task<TrainStepResult> StepAsync(float[] values, int count, long iteration, CancellationToken cancellationToken) =>
        thread.RunAsync(() => session.Step(values, count, iteration), cancellationToken);

    /// <summary>Writes a checkpoint (and the weights as safetensors when <paramref name="weightsPath"/> is given); see <see cref="TrainingSession.Save"/>.</summary>
    public Task SaveAsync(string path, TrainingSavePoint point, string? weightsPath, CancellationToken cancellationToken) =>
        thread.RunAsync(() =>
        {
            session.Save(path, point, weightsPath);
            return true;
        }, cancellationToken);

    public Task<TrainingResumePoint> ResumeAsync(string path, CancellationToken cancellationToken) =>
        thread.RunAsync(() => session.Resume(path), cancellationToken);

    /// <summary>Releases the networks and optimizer state on the model thread.</summary>
    public async ValueTask DisposeAsync() => await thread.RunAsync(() =>
    {
        session.Dispose();
        return true;
    }, CancellationToken.None);
}
