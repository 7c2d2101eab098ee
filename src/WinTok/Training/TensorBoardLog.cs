using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WinTok.Training;

/// <summary>
/// Scalars of a training run as TensorBoard event files (TorchSharp's <c>SummaryWriter</c>), one file per process in
/// <see cref="Folder"/>; TensorBoard reads every file of the folder as one run. No tensors are involved, so any thread
/// may write, one at a time.
/// </summary>
public sealed class TensorBoardLog
{
    private readonly SummaryWriter writer;
    private readonly Lock gate = new();

    public TensorBoardLog(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        Directory.CreateDirectory(folder);
        Folder = folder;
        writer = utils.tensorboard.SummaryWriter(folder);
    }

    public string Folder { get; }

    /// <summary>Writes <paramref name="values"/> at step <paramref name="iteration"/> (TensorBoard steps are 32-bit).</summary>
    public void Write(long iteration, IReadOnlyDictionary<string, double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var step = (int)Math.Min(iteration, int.MaxValue);
        lock (gate)
        {
            foreach (var (tag, value) in values) writer.add_scalar(tag, (float)value, step);
        }
    }
}
