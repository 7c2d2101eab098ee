using System.Reflection;
using System.Text;
using System.Text.Json;

namespace WinTok.Evaluation.ZeroShot;

/// <summary>
/// How a zero-shot classifier is built from class names and prompt templates, and how images are scored against it.
/// WinTok's reference (utils/zero_shot_classifier.py) lower-cases the class names; UniTok's (open_clip's
/// <c>build_zero_shot_classifier</c>) does not. Both take prompts class-major (all templates of a class together),
/// embed them, L2-normalise each, average over the templates, L2-normalise again, and score with
/// <c>LogitScale * image @ classifierᵀ</c>.
/// </summary>
/// <param name="ClassNames">Class i's name; i is the label the dataset gives.</param>
/// <param name="Templates">Python <c>str.format</c> templates with one <c>{}</c> for the class name.</param>
/// <param name="LowercaseClassNames">Whether names are lower-cased before formatting (WinTok: yes; UniTok: no).</param>
/// <param name="ClassesPerBatch">Classes per text-tower forward: 10 in both references (affects speed only).</param>
/// <param name="LogitScale">Multiplier of the cosine similarities: 100 in both references (the ranking does not depend on it).</param>
public sealed record ZeroShotProtocol(
    IReadOnlyList<string> ClassNames,
    IReadOnlyList<string> Templates,
    bool LowercaseClassNames,
    int ClassesPerBatch = 10,
    double LogitScale = 100.0)
{
    /// <summary>WinTok's ImageNet protocol: the 1000 OpenAI class names, lower-cased, with the 80 OpenAI templates.</summary>
    public static ZeroShotProtocol WinTokImageNet { get; } = new(ImageNetZeroShotData.ClassNames, ImageNetZeroShotData.Templates, LowercaseClassNames: true);

    /// <summary>UniTok's ImageNet protocol: the same names and templates, names kept as written.</summary>
    public static ZeroShotProtocol UniTokImageNet { get; } = WinTokImageNet with { LowercaseClassNames = false };

    /// <summary>
    /// The prompts for classes <paramref name="first"/> .. <paramref name="first"/> + <paramref name="count"/> - 1, class-major:
    /// prompt <c>c * Templates.Count + t</c> is template t with class <c>first + c</c>.
    /// </summary>
    public IReadOnlyList<string> Prompts(int first, int count)
    {
        var prompts = new List<string>(count * Templates.Count);
        for (int c = first; c < first + count; c++)
        {
            // Python's str.lower(); invariant culture matches it for these names (ASCII plus a few Latin letters).
            var name = LowercaseClassNames ? ClassNames[c].ToLowerInvariant() : ClassNames[c];
            prompts.AddRange(Templates.Select(template => FormatTemplate(template, name)));
        }
        return prompts;
    }

    /// <summary>Python's <c>template.format(name)</c> for templates with one or more <c>{}</c> and <c>{{</c>/<c>}}</c> escapes.</summary>
    /// <exception cref="FormatException">The template has a named or numbered field, or an unmatched brace.</exception>
    public static string FormatTemplate(string template, string name)
    {
        var text = new StringBuilder(template.Length + name.Length);
        for (int i = 0; i < template.Length; i++)
        {
            char ch = template[i];
            char next = i + 1 < template.Length ? template[i + 1] : '\0';
            if (ch == '{' && next == '}') { text.Append(name); i++; }
            else if ((ch == '{' && next == '{') || (ch == '}' && next == '}')) { text.Append(ch); i++; }
            else if (ch is '{' or '}') throw new FormatException($"Template '{template}' has a field other than '{{}}' at position {i}");
            else text.Append(ch);
        }
        return text.ToString();
    }
}

/// <summary>
/// The OpenAI ImageNet class names and prompt templates, shipped as data in <c>imagenet-openai.json</c> (an embedded
/// resource, taken from WinTok's utils/zero_shot_metadata.py, which is open_clip's; the file names its source).
/// </summary>
public static class ImageNetZeroShotData
{
    private static readonly Lazy<(string Source, string[] Names, string[] Templates)> Data = new(Read);

    /// <summary>The 1000 class names; index i is the i-th class in sorted-wnid order, the label torchvision's ImageFolder gives.</summary>
    public static IReadOnlyList<string> ClassNames => Data.Value.Names;

    /// <summary>The 80 OpenAI templates, in the reference's order.</summary>
    public static IReadOnlyList<string> Templates => Data.Value.Templates;

    /// <summary>Where the data came from.</summary>
    public static string Source => Data.Value.Source;

    private static (string, string[], string[]) Read()
    {
        const string name = "WinTok.Evaluation.ZeroShot.imagenet-openai.json";
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"The embedded resource {name} is missing from the WinTok assembly");
        using var document = JsonDocument.Parse(stream);
        var root = document.RootElement;
        string[] Strings(string key) => root.GetProperty(key).EnumerateArray().Select(e => e.GetString()!).ToArray();
        return (root.GetProperty("source").GetString()!, Strings("classnames"), Strings("templates"));
    }
}
