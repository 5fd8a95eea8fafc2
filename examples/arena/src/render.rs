//! The arena's windowed side: the keyboard into `PlayerInput`, shapes for
//! everything with a `Position`, and the HUD (score, combo, high score,
//! wave, boost, and the generation each rule module runs, so a hot reload
//! shows on screen).

#![allow(
    clippy::type_complexity,
    reason = "Bevy queries name their filters in full"
)]

use bevy::prelude::*;
use bevy::sprite::Anchor;
use bevy_egui::input::{EguiWantsInput, egui_wants_any_keyboard_input};
use bevy_hotwasm::prelude::*;
use game_types::{ARENA_HALF_HEIGHT, ARENA_HALF_WIDTH, Position, Powerup, Team};

use arena::logic::{
    ArenaModules, BULLET_RADIUS, Bullet, ENEMY_RADIUS, PLAYER_RADIUS, POWERUP_RADIUS, PlayerInput,
    Scoreboard,
};

/// The window's background, around the arena.
pub const BACKGROUND: Color = Color::srgb(0.05, 0.05, 0.08);
/// The arena's floor.
pub const FLOOR: Color = Color::srgb(0.11, 0.13, 0.18);
const PLAYER: Color = Color::srgb(0.30, 0.75, 1.0);
const ENEMY: Color = Color::srgb(0.95, 0.30, 0.30);
const BULLET: Color = Color::srgb(1.0, 0.90, 0.40);
const POWERUP: Color = Color::srgb(0.40, 1.0, 0.50);
const HUD_TEXT: Color = Color::WHITE;
/// egui's dark theme window fill (`Color32::from_gray(27)`).
const PANEL_FILL: Color = Color::srgb_u8(27, 27, 27);

/// Draws the arena and reads the keyboard.
pub struct ArenaRenderPlugin;

/// The HUD's text.
#[derive(Component)]
struct Hud;

/// Meshes and materials, made once.
#[derive(Resource)]
struct Looks {
    circle: Handle<Mesh>,
    player: Handle<ColorMaterial>,
    enemy: Handle<ColorMaterial>,
    bullet: Handle<ColorMaterial>,
    powerup: Handle<ColorMaterial>,
}

impl Plugin for ArenaRenderPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(ClearColor(BACKGROUND))
            .add_systems(Startup, set_the_stage)
            .add_systems(
                Update,
                (
                    // Keys typed into the debug panel are not the player's.
                    read_keyboard
                        .run_if(not(egui_wants_any_keyboard_input))
                        .before(WasmSystems::Run),
                    (dress, place, show_hud).after(WasmSystems::Run),
                ),
            );
    }
}

fn set_the_stage(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<ColorMaterial>>,
) {
    commands.spawn(Camera2d);
    commands.spawn((
        Mesh2d(meshes.add(Rectangle::new(
            2.0 * ARENA_HALF_WIDTH + 2.0 * PLAYER_RADIUS,
            2.0 * ARENA_HALF_HEIGHT + 2.0 * PLAYER_RADIUS,
        ))),
        MeshMaterial2d(materials.add(FLOOR)),
        Transform::from_xyz(0.0, 0.0, -1.0),
    ));
    commands.spawn((
        Hud,
        Text2d::default(),
        TextFont::from_font_size(18.0),
        TextColor(HUD_TEXT),
        Anchor::TOP_LEFT,
        Transform::from_xyz(-ARENA_HALF_WIDTH - 20.0, ARENA_HALF_HEIGHT + 62.0, 5.0),
    ));
    commands.insert_resource(Looks {
        circle: meshes.add(Circle::new(1.0)),
        player: materials.add(PLAYER),
        enemy: materials.add(ENEMY),
        bullet: materials.add(BULLET),
        powerup: materials.add(POWERUP),
    });
}

/// WASD or the arrows move; Space (or the left mouse button, unless it is
/// on the debug panel) fires.
fn read_keyboard(
    keys: Res<ButtonInput<KeyCode>>,
    mouse: Res<ButtonInput<MouseButton>>,
    egui_wants: Res<EguiWantsInput>,
    mut input: ResMut<PlayerInput>,
) {
    let pressed = |codes: [KeyCode; 2]| codes.iter().any(|&code| keys.pressed(code));
    let axis = |minus, plus| f32::from(u8::from(plus)) - f32::from(u8::from(minus));
    let movement = Vec2::new(
        axis(
            pressed([KeyCode::KeyA, KeyCode::ArrowLeft]),
            pressed([KeyCode::KeyD, KeyCode::ArrowRight]),
        ),
        axis(
            pressed([KeyCode::KeyS, KeyCode::ArrowDown]),
            pressed([KeyCode::KeyW, KeyCode::ArrowUp]),
        ),
    );
    let clicked = mouse.pressed(MouseButton::Left) && !egui_wants.wants_any_pointer_input();
    let fire = keys.pressed(KeyCode::Space) || clicked;
    // Leave what another system (the autoplay) wrote when no key is down.
    if movement != Vec2::ZERO || fire {
        *input = PlayerInput {
            movement: movement.normalize_or_zero(),
            fire,
        };
    }
}

/// Gives everything new in the arena its shape.
fn dress(
    mut commands: Commands,
    looks: Res<Looks>,
    new: Query<(Entity, Option<&Team>, Has<Bullet>, Has<Powerup>), Added<Position>>,
) {
    for (entity, team, bullet, powerup) in &new {
        let (material, radius, depth) = match (team, bullet, powerup) {
            (Some(Team::Player), ..) => (&looks.player, PLAYER_RADIUS, 3.0),
            (Some(Team::Enemy { .. }), ..) => (&looks.enemy, ENEMY_RADIUS, 2.0),
            (_, true, _) => (&looks.bullet, BULLET_RADIUS, 1.0),
            (_, _, true) => (&looks.powerup, POWERUP_RADIUS, 0.5),
            _ => continue,
        };
        commands.entity(entity).insert((
            Mesh2d(looks.circle.clone()),
            MeshMaterial2d(material.clone()),
            Transform::from_xyz(0.0, 0.0, depth).with_scale(Vec3::splat(radius)),
        ));
    }
}

/// Puts every shape where its `Position` says.
fn place(mut moved: Query<(&Position, &mut Transform), Changed<Position>>) {
    for (position, mut transform) in &mut moved {
        transform.translation.x = position.x;
        transform.translation.y = position.y;
    }
}

fn show_hud(
    board: Res<Scoreboard>,
    runtime: Res<WasmRuntime>,
    modules: Res<ArenaModules>,
    mut hud: Single<&mut Text2d, With<Hud>>,
) {
    let generations: Vec<String> = modules
        .named()
        .iter()
        .map(|(name, module)| match runtime.module(*module) {
            Some(status) => format!("{name} g{}", status.generation()),
            None => format!("{name} loading"),
        })
        .collect();
    let boost = if board.boosted { "   RAPID FIRE" } else { "" };
    let text = format!(
        "SCORE {}   COMBO x{}   HIGH {}   WAVE {}{boost}\n{}",
        board.score,
        board.combo,
        board.high,
        board.wave,
        generations.join("   ")
    );
    if hud.0 != text {
        hud.0 = text;
    }
}

/// One thing a screenshot of the game must show, counted in pixels.
pub struct Fact {
    what: &'static str,
    pixels: usize,
    needed: usize,
    pub holds: bool,
}

impl std::fmt::Display for Fact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.holds { "ok" } else { "MISSING" };
        write!(
            f,
            "{}: {} pixels (at least {}): {verdict}",
            self.what, self.pixels, self.needed
        )
    }
}

/// What a screenshot of a running game must show: mostly arena floor, the
/// player, enemies, and the HUD's white text in the top band; with the
/// debug panel open, the panel's window (which may hide the player and the
/// enemies) instead of those two. Every second pixel each way is looked at.
pub fn check_screenshot(image: &Image, panel_open: bool) -> Vec<Fact> {
    let (width, height) = (image.width(), image.height());
    let within = |color: Srgba, like: Color, tolerance: f32| {
        let like = like.to_srgba();
        (color.red - like.red).abs() < tolerance
            && (color.green - like.green).abs() < tolerance
            && (color.blue - like.blue).abs() < tolerance
    };
    let near = |color, like| within(color, like, 0.08);
    let (mut sampled, mut floor, mut player, mut enemy, mut hud, mut panel) = (0, 0, 0, 0, 0, 0);
    for y in (0..height).step_by(2) {
        for x in (0..width).step_by(2) {
            let Ok(color) = image.get_color_at(x, y) else {
                continue;
            };
            let color = color.to_srgba();
            sampled += 1;
            floor += usize::from(near(color, FLOOR));
            player += usize::from(near(color, PLAYER));
            enemy += usize::from(near(color, ENEMY));
            let white = color.red > 0.85 && color.green > 0.85 && color.blue > 0.85;
            hud += usize::from(white && y < height / 8);
            // Exactly egui's grey: the background and floor are close to it.
            panel += usize::from(within(color, PANEL_FILL, 0.012));
        }
    }
    let fact = |what, pixels, needed| Fact {
        what,
        pixels,
        needed,
        holds: pixels >= needed,
    };
    let mut facts = vec![
        fact("arena floor", floor, sampled * 3 / 10),
        fact("HUD text", hud, 40),
    ];
    if panel_open {
        facts.push(fact("debug panel", panel, sampled / 20));
    } else {
        facts.push(fact("player", player, 30));
        facts.push(fact("enemies", enemy, 30));
    }
    facts
}
