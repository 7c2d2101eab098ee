using WinTok.Inference;
using WinTok.Jobs.Checkpoints;

namespace WinTok.Worker.Checkpoints;

/// <summary>The control plane's view of a checkpoint (<see cref="ICheckpointInspector"/>), read with the model project's readers.</summary>
internal sealed class CheckpointInspector : ICheckpointInspector
{
    /// <summary>Reads the args only (a .pth's pickle, a safetensors header): a 3.4 GB checkpoint costs kilobytes here.</summary>
    public CheckpointFacts Inspect(string localPath, ModelChoice model)
    {
        var summary = TokenizerCheckpoints.Summarize(localPath, model.ToLoadOptions());
        return new CheckpointFacts(summary.Kind, summary.ImageSize, summary.ArgsJson);
    }
}

/// <summary>The model project's load options for a job's <see cref="ModelChoice"/>.</summary>
internal static class ModelChoiceExtensions
{
    public static ModelLoadOptions ToLoadOptions(this ModelChoice choice) => new(choice.Kind, choice.EncoderPreset, choice.EncoderConfig);
}
